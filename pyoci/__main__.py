"""`python -m pyoci`."""
from pyoci.cli import main

main()
