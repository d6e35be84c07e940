"""The foundation every floor stands on: errors, checks, atomic files, the runtime, and the
settings (attack, run, data-set presets) that all commands share. Imports nothing above it.
"""
