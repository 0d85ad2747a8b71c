from .all import main

main()
