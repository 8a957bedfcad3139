"""Static catalogues: honeypot services, archetypes, distro profiles and OS fingerprint families.

Plain importable Python with no database access, so the engine, the API and the commands share one truth.
"""
