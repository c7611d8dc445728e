"""placeholder"""
def analyse(frame, an, seed=0):
    return {}
