"""The Russian texts of the task files' explanation sheet: each English format, description and note
(domain/task_files.py) and its translation. A test checks that every text the sheet shows has one."""
from __future__ import annotations

RUSSIAN: dict[str, str] = {
    'With the country code, e.g. +79001234567; a number without “+” is read in the default country '
    '(8 912 345-67-89 is Russian); spaces, brackets and dashes are fine':
        'С кодом страны, например +79001234567; номер без «+» читается в стране по умолчанию '
        '(8 912 345-67-89 — российский); пробелы, скобки и дефисы допустимы',
    'The recipient’s mobile number.': 'Мобильный номер получателя.',
    'Up to 11 Latin letters, digits, spaces or . - _, or up to 15 digits':
        'До 11 латинских букв, цифр, пробелов или . - _, либо до 15 цифр',
    'An approved SMS sender name (the Sender names page).':
        'Одобренное имя отправителя SMS (страница «Имена отправителей»).',
    'Up to 4000 characters; a long text goes as several parts':
        'До 4000 символов; длинный текст отправляется несколькими частями',
    'The SMS text.': 'Текст SMS.',
    'Text, up to 200 characters': 'Текст, до 200 символов',
    'Your own id of the message: shown in the history and sent back in status callbacks.':
        'Ваш идентификатор сообщения: виден в истории и возвращается в уведомлениях о статусе.',
    'Up to 64 characters': 'До 64 символов',
    'An approved Viber sender name (the Sender names page).':
        'Одобренное имя отправителя Viber (страница «Имена отправителей»).',
    'Up to 1000 characters': 'До 1000 символов',
    'The Viber promotional message.': 'Рекламное сообщение Viber.',
    'A web address starting with http:// or https://': 'Веб-адрес, начинающийся с http:// или https://',
    'A picture shown in the message.': 'Картинка в сообщении.',
    'Up to 30 characters': 'До 30 символов',
    'The button’s caption; give the button URL too.': 'Надпись на кнопке; укажите и ссылку кнопки.',
    'Where the button leads; give the button text too.': 'Куда ведёт кнопка; укажите и текст кнопки.',
    'The recipient’s chat id in the messenger (Telegram).': 'ID чата получателя в мессенджере (Telegram).',
    'As approved in WhatsApp Business, up to 512 characters': 'Как одобрено в WhatsApp Business, до 512 символов',
    'The WhatsApp message template that opens the chat.': 'Шаблон сообщения WhatsApp, открывающий чат.',
    'A language code, e.g. en or ru': 'Код языка, например en или ru',
    'The language of the WhatsApp template.': 'Язык шаблона WhatsApp.',
    'Values separated by |': 'Значения через |',
    'The values of the WhatsApp template’s parameters {{1}}, {{2}}, … in order.':
        'Значения параметров шаблона WhatsApp {{1}}, {{2}}, … по порядку.',
    'A picture or document for the template’s header.': 'Картинка или документ для заголовка шаблона.',
    'An email address': 'Адрес электронной почты',
    'The recipient’s email address (for the email channel).': 'Адрес электронной почты получателя (для канала Email).',
    'Your id of the recipient.': 'Ваш идентификатор получателя.',
    'Herald posts every status change of the message to this address.':
        'Herald отправляет на этот адрес каждое изменение статуса сообщения.',
    'Any text, up to 4000 characters': 'Любой текст, до 4000 символов',
    'Sent back as is with every status callback.': 'Возвращается без изменений в каждом уведомлении о статусе.',
    'Text, up to 64 characters': 'Текст, до 64 символов',
    'Groups messages for the history filter and for cancelling them together.':
        'Объединяет сообщения для фильтра истории и для их совместной отмены.',
    'Your id of a series of messages.': 'Ваш идентификатор цепочки сообщений.',
    'Your id of a batch of messages.': 'Ваш идентификатор пакета сообщений.',
    'JSON text': 'Текст в формате JSON',
    'YYYY-MM-DD, DD.MM.YYYY or an Excel date': 'ГГГГ-ММ-ДД, ДД.ММ.ГГГГ или дата Excel',
    'Do not send before this day (with the start time, in the task’s time zone).':
        'Не отправлять раньше этого дня (вместе со временем начала, в часовом поясе задачи).',
    'HH-MM-SS, HH:MM:SS or HH:MM': 'ЧЧ-ММ-СС, ЧЧ:ММ:СС или ЧЧ:ММ',
    'Do not send before this time of the start date.': 'Не отправлять раньше этого времени в дату начала.',
    'HH:MM-HH:MM, several separated by commas': 'ЧЧ:ММ-ЧЧ:ММ, несколько через запятую',
    'Send only within these hours; replaces the template’s or task’s ranges for this row.':
        'Отправлять только в эти часы; заменяет для строки интервалы шаблона или задачи.',
    'Whole minutes from 1 to 2880': 'Целое число минут от 1 до 2880',
    'A message not delivered in this time expires (the next channel takes over).':
        'Сообщение, не доставленное за это время, истекает (отправка переходит к следующему каналу).',
    'true or false': 'true или false (да или нет)',
    'true: the row’s channels are each sent whatever happened to the ones before them, not only as fallbacks.':
        'true: каждый канал строки отправляется независимо от предыдущих, а не только как резервный.',
    'Up to 4000 characters; {{name}} inserts a variable': 'До 4000 символов; {{name}} вставляет переменную',
    'Filled: the row is sent by SMS.': 'Заполнено: строка отправляется по SMS.',
    'Up to 1000 characters; {{name}} inserts a variable': 'До 1000 символов; {{name}} вставляет переменную',
    'Filled: the row is sent through Viber.': 'Заполнено: строка отправляется через Viber.',
    'Filled: the row is sent through WhatsApp with this template.':
        'Заполнено: строка отправляется через WhatsApp с этим шаблоном.',
    'Up to 4096 characters': 'До 4096 символов',
    'The text of a WhatsApp message inside an open chat.': 'Текст сообщения WhatsApp внутри открытого чата.',
    'Up to 4096 characters; {{name}} inserts a variable': 'До 4096 символов; {{name}} вставляет переменную',
    'Filled: the row is sent through Telegram (needs the messenger user ID).':
        'Заполнено: строка отправляется через Telegram (нужен ID пользователя в мессенджере).',
    'The sender address of the email.': 'Адрес отправителя письма.',
    'Up to 200 characters': 'До 200 символов',
    'The sender name shown by mail programs.': 'Имя отправителя, которое показывают почтовые программы.',
    'Up to 998 characters': 'До 998 символов',
    'The subject of the email.': 'Тема письма.',
    'Text; {{name}} inserts a variable': 'Текст; {{name}} вставляет переменную',
    'Filled: the row is sent by email.': 'Заполнено: строка отправляется по электронной почте.',
    'Choose a Herald template in the task dialog: it gives the channels and their texts.':
        'Выберите шаблон Herald в окне задачи: он задаёт каналы и их тексты.',
    'A row whose channel columns are all empty is sent with the template chosen in the task dialog; the filled '
    'channels of a row are tried in the order Viber, WhatsApp, Telegram, SMS, email.':
        'Строка с пустыми колонками каналов отправляется по шаблону, выбранному в окне задачи; заполненные каналы '
        'строки пробуются в порядке Viber, WhatsApp, Telegram, SMS, email.',
    'Any other column is a variable {{name}} of the template: its header is the variable’s name, e.g. a column '
    '“name” fills {{name}}.':
        'Любая другая колонка — переменная {{name}} шаблона: её заголовок — имя переменной, например колонка '
        '«name» заполняет {{name}}.',
}
