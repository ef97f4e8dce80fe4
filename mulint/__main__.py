from mulint.entry import main

main()
