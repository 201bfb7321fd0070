import scenario


def version_major():
    return scenario.VERSION[0]


def version_minor():
    return scenario.VERSION[1]


def version_patch():
    return scenario.VERSION[2]
