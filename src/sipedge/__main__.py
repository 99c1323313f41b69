"""``python -m sipedge``: the same command line as ``sipedge``."""

from sipedge.cli import main

if __name__ == "__main__":
    main(prog_name="sipedge")
