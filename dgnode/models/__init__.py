"""dgnode.models"""
