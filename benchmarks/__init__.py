"""valeria-hub benchmarks: scenarios run against the local stand-ins and a real hub,
each printing its figures as one JSON object (``python -m benchmarks``)."""
