import sys

from mr2.cli import main

if __name__ == "__main__":
    sys.exit(main())
