"""dgnode.embedding"""
