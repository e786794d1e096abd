"""dgnode.media"""
