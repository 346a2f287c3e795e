/* main.c -- placeholder until the server lands (being written). */
int main(void) { return 0; }
