from gridgate.cli import main

main()
