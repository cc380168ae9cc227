from statek.cli import main

main()
