"""The life of a policy version as researchers act on it: the model pages and API, promotion, and the
first start's bootstrap. It sits above ``registry`` (the versions' rows and files) and ``pool`` (the pairs
a promotion retires and refills), which know nothing of each other's side of a promotion."""
