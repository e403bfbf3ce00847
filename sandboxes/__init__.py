"""Built-in simulators of the Kinguin and NOWPayments APIs, served as Litestar routers."""
