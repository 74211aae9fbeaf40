"""vapipe.__version__ and `vapipe --version` report the same version, git revision and ISA."""

import subprocess
import sys

import vapipe
from conftest import run_cli


def test_the_cli_and_the_module_print_the_same_line(cli):
    line = run_cli(cli, "--version").stdout.strip()
    assert line == vapipe.version_line()
    base, _, local = vapipe.__version__.partition("+")
    revision = vapipe.git_revision()
    assert line == f"vapipe {base} (git {revision}, oneDNN ISA {vapipe.cpu_isa()})"
    assert revision == "unknown" or local == revision.replace("-", ".")
    module = subprocess.run([sys.executable, "-m", "vapipe", "--version"], capture_output=True, text=True,
                            check=True)
    assert module.stdout.strip() == line
