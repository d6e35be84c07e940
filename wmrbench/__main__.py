"""``python -m wmrbench`` (also what ``torchrun -m wmrbench`` starts)."""

from wmrbench.cli.app import main

if __name__ == "__main__":
    main()
