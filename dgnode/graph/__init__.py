"""dgnode.graph"""
