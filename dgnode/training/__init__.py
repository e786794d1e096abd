"""dgnode.training"""
