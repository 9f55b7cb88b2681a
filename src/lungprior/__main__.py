"""`python -m lungprior`: the `lungprior` command."""

from lungprior.cli.main import main

if __name__ == "__main__":
    main()
