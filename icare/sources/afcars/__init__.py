"""US AFCARS legacy foster-care file (NDACAN): synthetic data; the reader is not built yet (issue 17)."""
