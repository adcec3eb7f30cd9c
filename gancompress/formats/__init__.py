"""Everything about bytes on disk: the project checkpoint, the sparse layout, export files, the
shrunk-graph spec and the evaluate report document. Torch modules are built here only from a
file's recorded architecture spec; nothing here loads a SOURCE (that is :mod:`gancompress.loading`).
"""
