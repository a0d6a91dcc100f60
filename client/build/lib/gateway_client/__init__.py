"""gateway-client: files in and out of the MySQL REST gateway, over HTTP only (it does not import
the gateway's code)."""

__version__ = "0.1.0"
