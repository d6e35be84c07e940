"""The reproduction studies: ``demo``, ``reproduce`` (the paper's tables) and ``family`` (the
reweighting family). They plan training and evaluation runs and build their tables.
"""
