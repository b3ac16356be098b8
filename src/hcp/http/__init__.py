"""The HTTP edge: FastAPI app factory, schemas, routes, auth and error mapping."""
