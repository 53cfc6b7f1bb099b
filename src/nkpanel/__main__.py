from nkpanel.cli import main

main()
