// How `lab … --help` describes options: required ones say so, and a default that is a number
// reads as one (commander quotes every string default, so "64" would show as "64" in quotes).
import { Help, type Option } from "commander";

/** Help settings every lab command inherits (set on the program before commands are added). */
export const HELP_SETTINGS: Partial<Help> = {
  optionDescription(this: Help, option: Option): string {
    let text = Help.prototype.optionDescription.call(this, option);
    text = text.replace(/\(default: "(-?\d+(?:\.\d+)?)"\)/, "(default: $1)");
    return option.mandatory ? `${text} (required)` : text;
  },
};
