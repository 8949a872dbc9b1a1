"""The `lpzero` commands, one module each: options, one settings object, one call into the workflow's layer.

`lpzero.cli` lists them and loads a module only when its command runs.
"""
