"""dgnode.reporting"""
