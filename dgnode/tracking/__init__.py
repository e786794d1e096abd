"""dgnode.tracking"""
