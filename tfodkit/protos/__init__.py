"""Protocol buffer schemas (text formats of the OD API) and their generated modules."""
