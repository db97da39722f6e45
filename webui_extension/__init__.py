"""webui (A1111 1.10, reForge, Forge) adapter: backends that patch a model, the script's UI and infotext.

Translation only: every formula comes from `model_sampling_flow`. See backend.py for the contract
between the script and a backend.
"""
