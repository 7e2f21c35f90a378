"""Privacy-enhancing computation the gateway applies when a clause asks for it.

``psi`` matches people across parties without either side seeing the other's list; ``dp`` adds
calibrated noise and keeps every person's privacy budget across all partnerships; ``cleanroom``
runs only the queries an analysis rule allows, on DuckDB, over data fetched through the gateway.
"""
