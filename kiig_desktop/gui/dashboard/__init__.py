"""The Dashboard screen: dataset batch runs and their model comparison."""
