"""Running the hub: embedded servers, the process supervisor and the services of ``fusion up``."""
