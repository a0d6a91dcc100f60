from gateway_client.cli import main

main()
