"""``python -m repro``: run the paper's study, then write its results page and figures."""

from repro.run import main

if __name__ == "__main__":
    raise SystemExit(main())
