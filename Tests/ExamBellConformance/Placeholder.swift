enum _PC {}
