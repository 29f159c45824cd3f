"""The terminal client of the jobs service (``valeria-hub jobs``): what people run on
their laptops. It talks HTTP to the service and shares no code with it."""
