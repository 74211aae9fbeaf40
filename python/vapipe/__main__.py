"""`python3 -m vapipe --version`: the line `vapipe --version` prints."""

import sys

import vapipe

if __name__ == "__main__":
    if sys.argv[1:] in ([], ["--version"]):
        print(vapipe.version_line())
    else:
        sys.exit("usage: python3 -m vapipe --version (the vapipe command has the rest)")
