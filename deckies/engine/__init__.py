"""DECNET's engine layer: everything that talks to Docker (images, compose projects, running containers)."""
