"""dgnode.tuning"""
