from kbert.cli.app import main

main()
