"""dgnode.features"""
