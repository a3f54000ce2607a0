import sys

from .cli import main

if __name__ == "__main__":  # importing this module (docs, doctests) runs nothing
    sys.exit(main())
