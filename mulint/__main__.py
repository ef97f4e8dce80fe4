from mulint.cli import main

main()
