"""Short screenplays shared by the scoring and adherence tests."""

SHORT = """Title: Three Beats

EXT. MEADOW - DAWN

Mist drifts over the still grass. A cat dozes in the warm sun.

INT. WAREHOUSE - NIGHT

Gunfire. Theo sprints between the crates as the roof explodes into flames!

EXT. GRAVEYARD - DUSK

An old man stands alone at an empty grave, a faded photograph in his hand.
"""
