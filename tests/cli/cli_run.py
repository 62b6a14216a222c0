"""Running the command line in-process, for the CLI tests (imported, not collected)."""

from interp_steer.cli import main

TINY = ["--model", "tiny"]


def run(capsys, *argv):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code, err):
    """The one error line of a run that must have failed with exit code 2."""
    assert code == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert len(errors) == 1, err
    return errors[0]
