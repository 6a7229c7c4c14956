"""Executes Jupyter notebooks headless on Deno's kernel; exits 1 on the first cell error.

Deno's kernel can report a cell `idle` before its last outputs, and nbclient stops reading at
`idle`, so outputs would go missing at random: this client keeps draining the cell's messages
for a short while after `idle`.

usage: python3 execute.py [--out DIR] NOTEBOOK...
"""
import argparse
import os
import queue
import sys
import time

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionComplete, CellExecutionError

DRAIN_S = 0.25


class DrainingClient(NotebookClient):
    """A NotebookClient that reads a cell's late outputs after its idle status."""

    async def _async_poll_output_msg(self, parent_msg_id, cell, cell_index):
        await super()._async_poll_output_msg(parent_msg_id, cell, cell_index)
        deadline = time.monotonic() + DRAIN_S
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.kc.iopub_channel.get_msg(timeout=left)
            except queue.Empty:
                return
            if msg["parent_header"].get("msg_id") != parent_msg_id:
                continue
            try:
                self.process_message(msg, cell, cell_index)
            except CellExecutionComplete:
                pass


def run(path, out_dir):
    nb = nbformat.read(path, as_version=4)
    client = DrainingClient(
        nb,
        kernel_name="deno",
        timeout=600,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    )
    started = time.monotonic()
    try:
        client.execute()
    except CellExecutionError as e:
        print(f"{path}: a cell failed\n{e}", file=sys.stderr)
        return False
    finally:
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            nbformat.write(nb, os.path.join(out_dir, os.path.basename(path)))
    print(f"{path}: {len(nb.cells)} cells ran in {time.monotonic() - started:.1f} s")
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="folder for the executed copies (with outputs)")
    ap.add_argument("notebooks", nargs="+")
    args = ap.parse_args()
    ok = all([run(p, args.out) for p in args.notebooks])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
