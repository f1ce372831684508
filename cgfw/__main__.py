from cgfw.cli import main

main()
