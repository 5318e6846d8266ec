"""Results: result lines -> Arrow columns, structured answers -> typed values, the keyed join."""
