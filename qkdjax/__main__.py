from qkdjax.cli import main

main()
