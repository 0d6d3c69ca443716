"""EnOS Connect Service (v2.0 / v2.1 / v2.4) and the APIM token service."""
