"""dgnode.corpus"""
